import Foundation

/// A parser for `.env` files: `KEY=VALUE` lines, `#` comments, single and double quotes,
/// and an optional `export ` prefix.
///
/// Single-quoted values are literal. Double-quoted values understand `\n`, `\t`, `\"` and
/// `\\`. Unquoted values end at an unquoted ` #` comment and are trimmed.
public enum EnvFile {
    /// Parses the text of an env file. `file` is used only in error messages.
    public static func parse(_ text: String, file: String) throws -> [String: String] {
        var result: [String: String] = [:]
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            line = line.drop(while: { $0 == " " || $0 == "\t" })
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = line.dropFirst(7).drop(while: { $0 == " " }) }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigError.syntax(file: file, line: lineNumber, reason: "expected KEY=VALUE")
            }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            guard isValidKey(key) else {
                throw ConfigError.syntax(file: file, line: lineNumber, reason: "invalid key '\(key)'")
            }
            let rest = line[line.index(after: eq)...].drop(while: { $0 == " " || $0 == "\t" })
            result[key] = try parseValue(rest, file: file, line: lineNumber)
        }
        return result
    }

    static func isValidKey(_ key: String) -> Bool {
        guard let first = key.unicodeScalars.first, !key.isEmpty else { return false }
        guard first == "_" || (first.properties.isAlphabetic && first.isASCII) else { return false }
        return key.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && $0.properties.isAlphabetic) || ("0"..."9").contains($0) }
    }

    private static func parseValue(_ value: Substring, file: String, line: Int) throws -> String {
        guard let quote = value.first, quote == "\"" || quote == "'" else {
            var text = String(value)
            if let hash = text.range(of: " #") { text = String(text[..<hash.lowerBound]) }
            return text.trimmingCharacters(in: .whitespaces)
        }
        var out = ""
        var index = value.index(after: value.startIndex)
        while index < value.endIndex {
            let c = value[index]
            if c == quote {
                let tail = value[value.index(after: index)...].trimmingCharacters(in: .whitespaces)
                if !tail.isEmpty && !tail.hasPrefix("#") {
                    throw ConfigError.syntax(file: file, line: line, reason: "unexpected text after closing quote")
                }
                return out
            }
            if quote == "\"" && c == "\\" {
                let next = value.index(after: index)
                if next < value.endIndex {
                    switch value[next] {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "\"": out.append("\"")
                    case "\\": out.append("\\")
                    case "$": out.append("$")
                    default: out.append("\\"); out.append(value[next])
                    }
                    index = value.index(after: next)
                    continue
                }
            }
            out.append(c)
            index = value.index(after: index)
        }
        throw ConfigError.syntax(file: file, line: line, reason: "unterminated \(quote) quote")
    }
}
