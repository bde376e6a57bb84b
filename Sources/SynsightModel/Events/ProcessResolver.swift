import SynsightBase

/// Optional enrichment of a PID (e.g. its executable path from /proc).
public protocol ProcessResolver {
    func exe(pid: UInt32) -> String?
    /// The process's cgroup, unit, container and pod, read while it lives;
    /// `cgroupID` (the kernel's cgroup v2 id of the task, 0 if unknown)
    /// still names its cgroup after it exited.
    func workload(pid: UInt32, cgroupID: UInt64) -> WorkloadIdentity?
    /// A process now in the same unit, container or pod as `workload`,
    /// running the same program (`comm`), that started at or after
    /// `startedAfter` (kernel boot ns), other than `pid`: the supervisor's
    /// restart of a listener that exited.
    func successor(of workload: WorkloadIdentity, excluding pid: UInt32, comm: String, startedAfter: UInt64) -> ProcessRef?
    /// Its parent and command line (ProcessLaunch); nil when its parent is
    /// init (PID 1) or it is gone.
    func launch(pid: UInt32) -> ProcessLaunch?
    /// A child of `launch`'s parent, other than `pid`, running the same
    /// command line as the process `launch` describes (`comm` its name),
    /// started at or after `startedAfter` (kernel boot ns): its restart by
    /// that parent, where no cgroup groups the service's processes.
    func relaunch(of launch: ProcessLaunch, excluding pid: UInt32, comm: String, startedAfter: UInt64) -> ProcessRef?
    /// What the process's threads are doing now; nil if it is gone.
    func runState(pid: UInt32) -> ProcessRunState?
    /// The containers that publish TCP port `port` on the host, running or
    /// not; read again when what is known was read before `freshSince`
    /// (CLOCK_BOOTTIME ns, as kernel events carry: when the port's listener was found closed).
    func publishers(port: UInt16, freshSince: UInt64) -> [DockerPortBinding]
    /// The CPU limit over the process and its recent throttling; nil when it has none.
    func cpuThrottle(pid: UInt32) -> CPUThrottle?
    /// Whether `addr` is an address of network namespace `netns`; nil when that cannot be read.
    func isLocalAddress(_ addr: IPAddress, netns: UInt32) -> Bool?
    /// The first process of network namespace `netns` (not a pod's pause
    /// process) with its workload, and its start; nil when none is found.
    func namespaceStart(netns: UInt32) -> NamespaceStart?
    /// The name of the Docker network whose id starts with `idPrefix`, from
    /// the configs of the containers attached to it; nil when none is.
    func dockerNetworkName(idPrefix: String) -> String?
}

extension ProcessResolver {
    public func workload(pid: UInt32, cgroupID: UInt64) -> WorkloadIdentity? { nil }
    public func successor(of workload: WorkloadIdentity, excluding pid: UInt32, comm: String, startedAfter: UInt64) -> ProcessRef? { nil }
    public func launch(pid: UInt32) -> ProcessLaunch? { nil }
    public func relaunch(of launch: ProcessLaunch, excluding pid: UInt32, comm: String, startedAfter: UInt64) -> ProcessRef? { nil }
    public func runState(pid: UInt32) -> ProcessRunState? { nil }
    public func publishers(port: UInt16, freshSince: UInt64) -> [DockerPortBinding] { [] }
    public func cpuThrottle(pid: UInt32) -> CPUThrottle? { nil }
    public func isLocalAddress(_ addr: IPAddress, netns: UInt32) -> Bool? { nil }
    public func namespaceStart(netns: UInt32) -> NamespaceStart? { nil }
    public func dockerNetworkName(idPrefix: String) -> String? { nil }
    public func workload(pid: UInt32) -> WorkloadIdentity? { workload(pid: pid, cgroupID: 0) }
    public func workload(task: TaskInfo) -> WorkloadIdentity? { workload(pid: task.pid, cgroupID: task.cgroupID) }
}
