"""Reports written from the accounting data (model cards, ...)."""
