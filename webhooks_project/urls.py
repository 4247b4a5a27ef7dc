from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    path("", include("transactions.urls")),
]

handler400 = "transactions.errors.bad_request"
handler404 = "transactions.errors.not_found"
handler500 = "transactions.errors.server_error"
