import Testing
@testable import SynsightKernel

/// What each cgroup-namespace outcome means for paths and the root cgroup.
/// The join itself, the detached mount and the paths named through it are
/// the end-to-end WorkloadIdentityTests' (inPodCgroupNamespace).
@Suite("cgroup namespace")
struct CgroupNamespaceTests {
    @Test("only a namespace of synsight's own that could not be joined makes paths and the root not the host's")
    func states() {
        #expect(CgroupNamespace.State.host.isHost && CgroupNamespace.State.joined.isHost)
        #expect(CgroupNamespace.State.unknown("x").isHost)
        #expect(!CgroupNamespace.State.own("setns to /proc/2/ns/cgroup: EPERM").isHost)
        #expect(CgroupNamespace.State.own("setns to /proc/2/ns/cgroup: EPERM").detail.contains("CAP_SYS_ADMIN"))
    }
}
