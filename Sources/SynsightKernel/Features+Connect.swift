import Glibc

extension KernelFeatures {
    /// Connections without the state-change hook (issue 16): the connect()
    /// caller from cgroup/connect{4,6} on the root cgroup v2, connection
    /// errors from tp_btf/inet_sk_error_report, listener births from
    /// listen()'s exit, deaths found when needed. inet_sock_set_state (about
    /// 10 runs per connection) is then not attached.
    /// SYNSIGHT_STATE_HOOK=1 keeps the state-change hook (for comparisons).
    public var connectWithoutStateHook: ProbeResult {
        if getenv("SYNSIGHT_STATE_HOOK").map({ String(cString: $0) }) == "1" {
            return .unsupported("SYNSIGHT_STATE_HOOK=1")
        }
        guard syscalls.entry.isSupported else {
            return .unsupported("listen() is not traced here (\(syscalls.entry.detail))")
        }
        let report = firewallSoftErrorProbe
        guard report.isSupported else { return report }
        return CgroupRoot.available
    }

    /// The programs of either way; exactly one of them is loaded (the error
    /// report's handler runs in the shared inet_sk_error_report program and
    /// checks SYN_CFG_NO_STATE_HOOK itself).
    var connectOptionalPrograms: [String: ProbeResult] {
        let r = connectWithoutStateHook
        return ["conn_connect4": r, "conn_connect6": r, "run_reap_listeners": r,
                "sock_state": r.isSupported
                    ? .unsupported("replaced by cgroup/connect{4,6} and inet_sk_error_report") : inetSockSetState]
    }
}
