"""Test topologies and targets: veth pairs, network namespaces, and a running
P4 target (BMv2 ``simple_switch_grpc`` when installed, else pyoffload's
embedded target), shared by the PTF tests, the demo and the benchmarks."""
