"""liveorch: hybrid live ISOs from KIWI descriptions, built by unprivileged container stages."""

__version__ = "0.1.0"
