"""The development stack of `make run`: the stack, the OTP sink, the demo (its keystore and
transcript)."""
