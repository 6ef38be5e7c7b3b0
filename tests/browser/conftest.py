"""The explorer notebook here is a fixture of the browser test, not a tutorial: nbval must not collect it."""

collect_ignore = ["explorers.ipynb"]
