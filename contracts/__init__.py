"""The product's published contracts and the code that keeps them: the AsyncAPI document of
the Kafka topics, the OpenAPI document of the HTTP API, the frozen v1 example events, and the
checks that the code has not drifted from them nor broken a consumer of ``v1``
(``python -m contracts``, ``make contracts``)."""
