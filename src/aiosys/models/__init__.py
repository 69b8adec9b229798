"""The model data plane: catalog, task contracts, router, providers, cost and budgets."""
