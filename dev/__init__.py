"""The development stack of `make run`: signing key and tokens, OTP sink, demo."""
