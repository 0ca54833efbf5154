"""One router module per endpoint family (``/kv`` is served outside FastAPI: ``server/kv.py``)."""
