//! Linux I/O: rtnetlink, the space, the hub, uplink sockets, NAT.
