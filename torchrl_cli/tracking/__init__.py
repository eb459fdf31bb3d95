"""Where a run's record goes: the console table and progress bar, TensorBoard, and the
trackers beside it (MLflow, W&B) behind one ``Tracker`` protocol."""
