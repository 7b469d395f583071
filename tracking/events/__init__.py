"""Promotion events: built from registry changes, kept in an outbox, delivered at least once.

- ``outbox``: the event a change produces (written by the store in the change's transaction);
- ``webhooks``: settings, signatures and the address guard of webhook delivery;
- ``dispatch``: the dispatcher that POSTs due events, retries with backoff and dead-letters.

Importing this package imports neither httpx nor boto3 (``dispatch`` imports httpx).
"""
