"""What the tests, the benchmarks and the development stack share to run the product for
real: a local Kafka broker and PostgreSQL server, the development signing key and its
tokens, the product's processes (started, watched,
killed, stopped), free ports, private topics, and a whole stack of workers and API replicas
brought up and waited for. Nothing here ships or runs in production."""
