"""JupyterLab settings for `make lab`: strip circuitsvis bundles from notebooks when they are saved."""

c = get_config()  # noqa: F821  (provided by Jupyter when it loads this file)


def _strip_circuitsvis(model, **kwargs):
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    from toolkit.viz import strip_bundles

    strip_bundles(model["content"])


c.FileContentsManager.pre_save_hook = _strip_circuitsvis
