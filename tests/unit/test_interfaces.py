from edgeswarm.mdns import choose_interface, default_route_interface, routed_interface

TABLE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask
eth1\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF
eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000
"""


def test_default_route_interface_is_read_from_the_route_table() -> None:
    assert default_route_interface(TABLE) == "eth0"
    assert default_route_interface(TABLE.splitlines()[0]) is None


def test_an_explicit_interface_or_listen_address_wins() -> None:
    assert choose_interface("10.1.2.3", "0.0.0.0") == "10.1.2.3"
    assert choose_interface("", "127.0.0.1") == "127.0.0.1"
    assert choose_interface("", "0.0.0.0")  # some address, from the default route or loopback


def test_without_a_default_route_the_first_routed_interface_is_used() -> None:
    lan_only = (
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
        "eth0\t000000E0\t00000000\t0001\t0\t0\t0\t000000F0\n"
    )
    assert routed_interface(lan_only) == "eth0"
    assert routed_interface(TABLE) == "eth0"
    assert routed_interface("Iface\tDestination\n") is None
