import SynsightBase
/// One field of a typed evidence object (`ReasonEvidence`): its key, and how
/// the struct's property is read from and written to JSON. A struct's
/// `layout` lists its fields in contract order, so one declaration per field
/// gives both directions, and the tests can check every key a struct may
/// write against the schema without producing a record of each.
///
/// Nested objects (listeners, holders, endpoints, processes) stay
/// `JSONValue`: they keep the field names of their own types.
public struct EvidenceField<E>: Sendable {
    public let key: EvidenceKey
    package let kind: EvidenceFieldKind
    let read: @Sendable (inout E, JSONValue) -> Void
    /// nil: the field is not written.
    let write: @Sendable (E) -> JSONValue?
}

extension EvidenceField {
    public static func string(_ key: EvidenceKey, _ path: WritableKeyPath<E, String?> & Sendable) -> Self {
        Self(key: key, kind: .string, read: { $0[keyPath: path] = $1.stringValue },
             write: { $0[keyPath: path].map(JSONValue.string) })
    }

    /// Written as a JSON integer (clamped to Int64); read back only if it fits `I`.
    public static func int<I: FixedWidthInteger & Sendable>(_ key: EvidenceKey, _ path: WritableKeyPath<E, I?> & Sendable) -> Self {
        Self(key: key, kind: .integer, read: { $0[keyPath: path] = $1.intValue.flatMap { I(exactly: $0) } },
             write: { $0[keyPath: path].map { .int(Int64(clamping: $0)) } })
    }

    /// A Bool written whenever it is set.
    public static func bool(_ key: EvidenceKey, _ path: WritableKeyPath<E, Bool?> & Sendable) -> Self {
        Self(key: key, kind: .boolean, read: { if case .bool(let b) = $1 { $0[keyPath: path] = b } },
             write: { $0[keyPath: path].map(JSONValue.bool) })
    }

    /// A Bool written only when it differs from `default` (the struct's initial value).
    public static func flag(_ key: EvidenceKey, _ path: WritableKeyPath<E, Bool> & Sendable, default d: Bool) -> Self {
        Self(key: key, kind: .flag(default: d), read: { if case .bool(let b) = $1 { $0[keyPath: path] = b } },
             write: { $0[keyPath: path] == d ? nil : .bool(!d) })
    }

    /// A nested object kept as JSON.
    public static func value(_ key: EvidenceKey, _ path: WritableKeyPath<E, JSONValue?> & Sendable) -> Self {
        Self(key: key, kind: .value, read: { $0[keyPath: path] = $1 }, write: { $0[keyPath: path] })
    }

    /// An array of nested objects kept as JSON.
    public static func array(_ key: EvidenceKey, _ path: WritableKeyPath<E, [JSONValue]?> & Sendable) -> Self {
        Self(key: key, kind: .array, read: { if case .array(let a) = $1 { $0[keyPath: path] = a } },
             write: { $0[keyPath: path].map(JSONValue.array) })
    }

    public static func strings(_ key: EvidenceKey, _ path: WritableKeyPath<E, [String]?> & Sendable) -> Self {
        Self(key: key, kind: .strings, read: { $0[keyPath: path] = jsonStrings($1) },
             write: { $0[keyPath: path].map(jsonArray) })
    }

    /// Strings that may be unknown: `.some(nil)` is written as null, nil not at all.
    public static func nullableStrings(_ key: EvidenceKey, _ path: WritableKeyPath<E, [String]??> & Sendable) -> Self {
        Self(key: key, kind: .nullableStrings,
             read: { e, v in
                 if case .null = v { e[keyPath: path] = .some(nil) } else if let s = jsonStrings(v) { e[keyPath: path] = s }
             },
             write: { e -> JSONValue? in
                 guard let known = e[keyPath: path] else { return nil }
                 return known.map(jsonArray) ?? .null
             })
    }
}

private func jsonStrings(_ v: JSONValue) -> [String]? {
    guard case .array(let a) = v else { return nil }
    return a.compactMap(\.stringValue)
}

private func jsonArray(_ strings: [String]) -> JSONValue { .array(strings.map(JSONValue.string)) }

/// The JSON type an `EvidenceField` is written as (`ReasonEvidenceTests`
/// compares it with the schema's).
package enum EvidenceFieldKind: Sendable, Hashable {
    case string, integer, boolean, value, array, strings
    /// A Bool written only when it is not `default`.
    case flag(default: Bool)
    /// Strings, or JSON null for "could not be read" (`[String]??`).
    case nullableStrings
}
