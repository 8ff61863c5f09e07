"""The alert address guard sees through IPv6 forms that carry an IPv4 address and knows the cloud metadata
addresses (issue 27 item 6): ``ipaddress``' own properties (``ipv4_mapped``, ``sixtofour``, ``teredo``) plus
NAT64, ``0.0.0.0/8`` and the metadata list (AWS, GCP, Azure, OCI, Alibaba). Through a real send in
``tests/core/alerts/test_alert_boundary.py``."""

from __future__ import annotations

import ipaddress

import pytest

from core.alerts.addresses import refusal


@pytest.mark.parametrize(("address", "reason"), [
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:7f00:1:0:0:0:0:1", "loopback"),
    ("2002:a9fe:a9fe::", "cloud metadata"),  # 6to4 of 169.254.169.254
    ("2002:a9fe:0a01::", "link-local"),  # 6to4 of 169.254.10.1
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo, client 127.0.0.1 (obfuscated)
    ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 of 169.254.169.254
    ("0.1.2.3", "this-network (0.0.0.0/8)"),
    ("0.0.0.0", "unspecified"),
    ("169.254.169.254", "cloud metadata"),  # AWS, GCP, OCI, DigitalOcean, OpenStack
    ("fd00:ec2::254", "cloud metadata"),  # AWS IMDS over IPv6
    ("168.63.129.16", "cloud metadata"),  # Azure WireServer
    ("192.0.0.192", "cloud metadata"),  # OCI
    ("100.100.100.200", "cloud metadata"),  # Alibaba
    ("169.254.170.2", "cloud metadata"),  # ECS task credentials
])
def test_internal_addresses_in_every_form_are_refused(address: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["10.0.0.1", "192.168.1.20", "2002:0a00:0001::", "8.8.8.8",
                                     "2606:4700:4700::1111", "::ffff:10.1.2.3"])
def test_private_and_public_addresses_stay_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None
