"""What every process of the product shares to be observed: JSON logs, tracing, metrics."""
