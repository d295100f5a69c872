"""Reading ``openssl speed ecdsap256``'s table."""

import pytest

from bench.openssl import parse_speed

OPENSSL_3_0 = """\
version: 3.0.19
built on: Fri Apr  3 12:29:32 2026 UTC
options: bn(64,64)
compiler: gcc -fPIC -pthread -m64 -Wa,--noexecstack -Wall -O2 -DNDEBUG
CPUINFO: OPENSSL_ia32cap=0xfffa3203078bffff:0x400684219c07ab
                              sign    verify    sign/s verify/s
 256 bits ecdsa (nistp256)   0.0000s   0.0001s  31534.4  11250.0
"""

# Other curves in the same run, as `openssl speed ecdsa` prints them.
SEVERAL_CURVES = """\
                              sign    verify    sign/s verify/s
 224 bits ecdsa (nistp224)   0.0001s   0.0002s  13000.1   6000.2
 256 bits ecdsa (nistp256)   0.0000s   0.0001s  40123.0  13456.7
 384 bits ecdsa (nistp384)   0.0010s   0.0008s   1000.0   1250.0
"""


def test_the_nistp256_row_gives_sign_and_verify_per_second() -> None:
    assert parse_speed(OPENSSL_3_0) == (31534.4, 11250.0)


def test_only_the_nistp256_row_counts() -> None:
    assert parse_speed(SEVERAL_CURVES) == (40123.0, 13456.7)


@pytest.mark.parametrize(
    "output",
    [
        "",
        "Doing 256 bits verify ecdsa's for 3s: 33750 256 bits ECDSA verify in 2.99s\n",
        " 384 bits ecdsa (nistp384)   0.0010s   0.0008s   1000.0   1250.0\n",
    ],
)
def test_output_without_the_row_is_refused(output: str) -> None:
    with pytest.raises(ValueError, match="nistp256"):
        parse_speed(output)
