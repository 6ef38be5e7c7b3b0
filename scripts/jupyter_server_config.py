"""JupyterLab settings for `make lab`: strip circuitsvis bundles from notebooks when they are saved."""

c = get_config()  # noqa: F821  (provided by Jupyter when it loads this file)
c.FileContentsManager.pre_save_hook = "toolkit.viz.circuits.pre_save_hook"
