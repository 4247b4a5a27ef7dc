from drf_spectacular.openapi import AutoSchema


class TaggedAutoSchema(AutoSchema):
    """Groups the API docs by audience rather than by the first path segment."""

    def get_tags(self) -> list[str]:
        return ["transactions"] if self.path.startswith("/v1/") else ["health and readiness"]
