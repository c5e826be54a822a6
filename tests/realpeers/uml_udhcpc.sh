#!/bin/busybox sh
# busybox udhcpc's event script inside the user-mode-linux test guest (see uml_guest_init).
# udhcpc exports the lease as $ip, $mask (prefix length), $router and $ntpsrv (option 42).
case "$1" in
deconfig)
    /usr/sbin/ip addr flush dev "$interface"
    /usr/sbin/ip link set "$interface" up
    ;;
bound|renew)
    /usr/sbin/ip addr flush dev "$interface"
    /usr/sbin/ip addr add "$ip/$mask" dev "$interface"
    echo "HOSTCLOCK-UML lease ip=$ip mask=$mask router=$router ntpsrv=$ntpsrv"
    ;;
esac
exit 0
