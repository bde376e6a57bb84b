import SynsightBase
import SynsightModel

/// An IPVS virtual service of a network namespace, as /proc/net/ip_vs lists
/// it: IPVS is a netfilter module, invisible to `nft list ruleset`, and a
/// TCP service with no real server it can schedule answers every SYN with
/// ICMP port unreachable and drops it (ip_vs_leave): kube-proxy in IPVS
/// mode keeps a Service without ready endpoints so, keepalived or a hand-made
/// LVS one whose servers all failed their checks (weight 0).
public struct IPVSService: Sendable, Hashable {
    public struct Destination: Sendable, Hashable {
        public var endpoint: Endpoint
        /// Masq, Local, Tunnel, Route.
        public var forward: String
        public var weight: Int
        public var active: Int
        public var inactive: Int
    }

    /// TCP, UDP, SCTP.
    public var proto: String
    public var endpoint: Endpoint
    public var scheduler: String
    public var destinations: [Destination]

    public init(proto: String, endpoint: Endpoint, scheduler: String, destinations: [Destination] = []) {
        self.proto = proto
        self.endpoint = endpoint
        self.scheduler = scheduler
        self.destinations = destinations
    }

    /// The real servers IPVS may schedule: weight 0 is quiesced.
    public var usable: [Destination] { destinations.filter { $0.weight > 0 } }

    /// "TCP 10.96.0.10:80", as `ipvsadm -Ln` names it (with `-t`).
    public var label: String { "\(proto) \(endpoint)" }

    /// Whether a SYN to `server` is this service's.
    public func serves(tcp server: Endpoint) -> Bool { proto == "TCP" && endpoint == server }

    package var json: JSONValue {
        .object([("service", .string(label)), ("scheduler", .string(scheduler)),
                 ("destinations", .array(destinations.map { d in
                     .object([("address", .string(d.endpoint.description)), ("forward", .string(d.forward)),
                              ("weight", .int(Int64(d.weight))), ("active", .int(Int64(d.active))),
                              ("inactive", .int(Int64(d.inactive)))])
                 }))])
    }

    /// /proc/net/ip_vs (ip_vs_info_seq_show): a service line
    /// "TCP  0A60000A:0050 rr " (the IPv4 address as %08X of ntohl, unlike
    /// /proc/net/tcp) or "TCP  [2001:db8::1]:0050 rr ", then its real
    /// servers "  -> 0AF40105:1F90      Masq    1      0          0".
    /// Firewall-mark services (FWM) are left out: no address to match.
    public static func parse(_ text: String) -> [IPVSService] {
        var out: [IPVSService] = []
        var current: Int?  // the service the following "->" lines belong to (nil: one left out)
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if line.hasPrefix("  ->") {
                guard let i = current, f.count >= 6, let e = endpoint(f[1]), let w = Int(f[3]) else { continue }
                out[i].destinations.append(Destination(endpoint: e, forward: String(f[2]), weight: w,
                                                       active: Int(f[4]) ?? 0, inactive: Int(f[5]) ?? 0))
            } else if f.count >= 3, ["TCP", "UDP", "SCTP"].contains(f[0]), let e = endpoint(f[1]) {
                out.append(IPVSService(proto: String(f[0]), endpoint: e, scheduler: String(f[2])))
                current = out.count - 1
            } else {
                current = nil
            }
        }
        return out
    }

    /// "0A60000A:0050" or "[2001:db8::1]:0050" (port in hex).
    static func endpoint(_ s: Substring) -> Endpoint? {
        guard let colon = s.lastIndex(of: ":"), let port = UInt16(s[s.index(after: colon)...], radix: 16) else { return nil }
        let host = s[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            return IPAddress.parse(String(host.dropFirst().dropLast())).map { Endpoint(addr: $0, port: port) }
        }
        guard host.count == 8, let v = UInt32(host, radix: 16) else { return nil }
        return Endpoint(addr: IPAddress(v4: UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)), port: port)
    }
}
