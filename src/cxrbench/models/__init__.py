"""The networks of the model config groups (built with Hydra's instantiate) and their initial weights."""
