import Glibc

/// Where `/metrics` is served: `--metrics-address [HOST:]PORT`.
/// A bare port binds loopback only (127.0.0.1): exposing the endpoint on
/// other interfaces must be asked for (`0.0.0.0:9464`, `[::]:9464`).
public struct MetricsAddress: Sendable, Hashable, CustomStringConvertible {
    public enum Host: Sendable, Hashable {
        case v4([UInt8])
        case v6([UInt8])
    }

    public var host: Host
    public var port: UInt16
    /// The host as the user wrote it (for messages).
    public var hostText: String

    public init(host: Host, port: UInt16, hostText: String) {
        self.host = host
        self.port = port
        self.hostText = hostText
    }

    public static let syntaxHelp = "PORT, HOST:PORT or [IPV6]:PORT (e.g. 9464, 127.0.0.1:9464, 0.0.0.0:9464, [::1]:9464)"

    /// Parses `9464`, `127.0.0.1:9464`, `localhost:9464`, `[::1]:9464`,
    /// `0.0.0.0:9464`, `[::]:9464`. Host names other than `localhost` are
    /// refused (no DNS at start-up: an address either is on this host or not).
    public static func parse(_ text: String) throws(MetricsAddressError) -> MetricsAddress {
        var hostPart = ""
        var portPart = Substring(text)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw .init("'\(text)': missing ']' after the IPv6 address; expected \(syntaxHelp)")
            }
            hostPart = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                throw .init("'\(text)': expected ':PORT' after ']'; expected \(syntaxHelp)")
            }
            portPart = rest.dropFirst()
            guard let b = parse6(hostPart) else {
                throw .init("'\(text)': '\(hostPart)' is not an IPv6 address; expected \(syntaxHelp)")
            }
            return MetricsAddress(host: .v6(b), port: try port(portPart, text), hostText: hostPart)
        }
        if let colon = text.lastIndex(of: ":") {
            hostPart = String(text[..<colon])
            portPart = text[text.index(after: colon)...]
            if hostPart.contains(":") {
                throw .init("'\(text)': write an IPv6 address in brackets, e.g. [\(hostPart)]:\(portPart); expected \(syntaxHelp)")
            }
        }
        let p = try port(portPart, text)
        if hostPart.isEmpty { return MetricsAddress(host: .v4([127, 0, 0, 1]), port: p, hostText: "127.0.0.1") }
        if hostPart == "localhost" { return MetricsAddress(host: .v4([127, 0, 0, 1]), port: p, hostText: "localhost") }
        guard let b = parse4(hostPart) else {
            throw .init("'\(text)': '\(hostPart)' is not an IPv4 address (host names other than localhost are not resolved); expected \(syntaxHelp)")
        }
        return MetricsAddress(host: .v4(b), port: p, hostText: hostPart)
    }

    static func port(_ s: Substring, _ text: String) throws(MetricsAddressError) -> UInt16 {
        guard !s.isEmpty, s.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(s), (1...65535).contains(v) else {
            throw .init("'\(text)': the port must be a number from 1 to 65535; expected \(syntaxHelp)")
        }
        return UInt16(v)
    }

    static func parse4(_ s: String) -> [UInt8]? {
        var b = [UInt8](repeating: 0, count: 4)
        return inet_pton(AF_INET, s, &b) == 1 ? b : nil
    }

    static func parse6(_ s: String) -> [UInt8]? {
        var b = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET6, s, &b) == 1 ? b : nil
    }

    public var isV6: Bool { if case .v6 = host { return true } else { return false } }

    /// As a URL authority: 127.0.0.1:9464 or [::1]:9464.
    public var description: String { isV6 ? "[\(hostText)]:\(port)" : "\(hostText):\(port)" }

    public func with(port: UInt16) -> MetricsAddress {
        MetricsAddress(host: host, port: port, hostText: hostText)
    }
}

public struct MetricsAddressError: Error, CustomStringConvertible, Equatable {
    public var description: String
    init(_ d: String) { description = d }
}
