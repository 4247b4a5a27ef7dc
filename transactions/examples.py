"""The sample webhook: shown in the API docs, sent by the commands, built on by the tests.

Plain data with no Django import, so `bench/run.py` can use it without setting Django up.
"""

EXAMPLE_WEBHOOK = {
    "transaction_id": "txn_abc123",
    "source_account": "acc_user_1",
    "destination_account": "acc_merchant_1",
    "amount": 1500,
    "currency": "INR",
}
