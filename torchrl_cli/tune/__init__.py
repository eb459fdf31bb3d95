"""``torchrl tune``: Optuna studies over a search preset (``hparams_search=<preset>``): the
search space, the study's loop of trials, and its results (tables, plots, the tuned file)."""
