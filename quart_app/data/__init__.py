"""The data layer: statements, pools, models, accounts, sessions and migrations."""
