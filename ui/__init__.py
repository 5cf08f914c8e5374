"""Streamlit glue for gmx's pages: cached resources, session state, shared widgets.

This is the only package besides ``app.py`` and ``pages/`` that imports streamlit; the library ``gmx``
never does.
"""
