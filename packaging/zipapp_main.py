# __main__ of cdh.pyz: packaging/zipapp.py puts this in place of shiv's `_bootstrap.bootstrap()`.
# Under a runtime laid out by packaging/pyruntime.py (the image's /opt/cdh/runtime, HOST_DIR/runtime/<id>)
# cdh and its wheels are already unpacked and compiled beside the interpreter and `_cdh_runtime` is on
# sys.path: skip shiv's bootstrap, whose imports every crash would pay (README "Start-up") and whose
# extraction root would need a writable HOME. Anywhere else (`python3 cdh.pyz` by hand) shiv runs as usual.
try:
    import _cdh_runtime
except ModuleNotFoundError as err:
    if err.name != "_cdh_runtime":
        raise
    import _bootstrap

    _bootstrap.bootstrap()
else:
    _cdh_runtime.run()
