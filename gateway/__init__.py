"""hostclock's gateway: a userspace virtual-network gateway that gives a VM guest its host's clock."""
