"""Portfolio generator and benchmark harness."""
