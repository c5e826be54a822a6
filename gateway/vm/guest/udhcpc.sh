#!/bin/sh
# udhcpc event script of the hostclock test guest (runs inside the VM).
# busybox udhcpc exports the lease as environment variables: $ip, $subnet,
# $mask (prefix length), $router, $ntpsrv (option 42, asked for with -O ntpsrv).
case "$1" in
deconfig)
    ip addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip addr flush dev "$interface"
    if [ -n "$mask" ]; then
        ip addr add "$ip/$mask" dev "$interface"
    else
        ifconfig "$interface" "$ip" netmask "${subnet:-255.255.255.0}"
    fi
    if [ -n "$router" ]; then
        set -- $router
        ip route add default via "$1" dev "$interface"
    fi
    {
        echo "ip='$ip'"
        echo "subnet='$subnet'"
        echo "mask='$mask'"
        echo "router='$router'"
        echo "ntpsrv='$ntpsrv'"
        echo "serverid='$serverid'"
        echo "lease='$lease'"
    } > /run/lease
    ;;
esac
exit 0
