"""pytest entry point of a clone: the suite's options and its plugin (``properties/options.py``,
``properties/plugin.py``). ``pytest --optimizer SPEC --rule RULE`` checks the implementation SPEC names against RULE;
without ``--optimizer`` the built-in implementations are checked.
"""
pytest_plugins = ("properties.options", "properties.plugin")
