"""Web framework middlewares, each in its own module behind its own extra.

``log_collector.integrations.flask`` (``pip install 'log-collector-durable[flask]'``),
``log_collector.integrations.asgi`` (FastAPI / Starlette, extra ``fastapi``) and
``log_collector.integrations.django`` (extra ``django``) each import their
framework; this package and the rest of the library import none, so import
the module of the framework you use.
"""
