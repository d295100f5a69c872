"""The fraud-signal example consumer: rejections counted in sliding windows."""
