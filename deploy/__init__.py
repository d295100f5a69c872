"""Operating the product: the local Kafka broker and the development stack.

Not shipped with the service (pyproject declares only api, worker and schemas). Run its
modules from the repository root, e.g. ``python -m deploy.dev.stack``.
"""
