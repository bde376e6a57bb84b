/// Trimming without Foundation (the modules that parse host files and
/// rulesets do not import it).
extension StringProtocol {
    /// `self` without the leading and trailing characters of `set`.
    package func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
