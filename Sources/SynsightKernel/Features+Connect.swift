import Glibc

extension KernelFeatures {
    /// Connections without the state-change hook (issue 16): the connect()
    /// caller from cgroup/connect{4,6} on the root cgroup v2, connection
    /// errors from tp_btf/inet_sk_error_report, listener births from
    /// listen()'s exit, deaths found when needed. inet_sock_set_state (about
    /// 10 runs per connection) is then not attached.
    /// `--force-hook connect=inet_sock_set_state` keeps the state-change hook (for comparisons).
    func probeConnectWithoutStateHook() -> ProbeResult {
        if choices.connect == .stateChange {
            return .unsupported("disabled by --force-hook connect=inet_sock_set_state")
        }
        guard syscalls.entry.isSupported else {
            return .unsupported("listen() is not traced here (\(syscalls.entry.detail))")
        }
        let report = firewall.softError
        guard report.isSupported else { return report }
        return CgroupRoot.available
    }
}
