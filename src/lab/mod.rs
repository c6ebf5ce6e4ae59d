//! Emulated topologies in network namespaces: links, scenarios, workloads, reports.
