package vercmp

import "strings"

// Operator is a version comparison operator, as systemd-analyze
// compare-versions accepts them (src/shared/compare-operator.c in v252).
type Operator int

// The comparison operators. The zero Operator is invalid.
const (
	OpLess Operator = iota + 1
	OpLessOrEqual
	OpEqual
	OpNotEqual
	OpGreaterOrEqual
	OpGreater
)

// ParseOperator parses s, which must be exactly one of "lt", "le", "eq",
// "ne", "ge", "gt", "<", "<=", "==", "!=", ">=", ">", and the spellings "="
// and "<>" that systemd also accepts. The glob operators "$=" and "!$=" of
// systemd's conditions are not version comparisons and are refused.
func ParseOperator(s string) (Operator, error) {
	// systemd refuses the glob operators before advancing past them.
	if strings.HasPrefix(s, "$=") || strings.HasPrefix(s, "!$=") {
		return 0, &UnknownOperatorError{Operator: s, Rest: s}
	}
	// Every spelling systemd accepts, in the order it tries them: a
	// spelling that is a prefix of another comes after it.
	spellings := [...]struct {
		text string
		op   Operator
	}{
		{"<>", OpNotEqual},
		{"<=", OpLessOrEqual},
		{">=", OpGreaterOrEqual},
		{"<", OpLess},
		{">", OpGreater},
		{"==", OpEqual},
		{"=", OpEqual},
		{"!=", OpNotEqual},
		{"lt", OpLess},
		{"le", OpLessOrEqual},
		{"eq", OpEqual},
		{"ne", OpNotEqual},
		{"ge", OpGreaterOrEqual},
		{"gt", OpGreater},
	}
	for _, sp := range spellings {
		if rest, ok := strings.CutPrefix(s, sp.text); ok {
			if rest != "" {
				return 0, &UnknownOperatorError{Operator: s, Rest: rest}
			}
			return sp.op, nil
		}
	}
	return 0, &UnknownOperatorError{Operator: s, Rest: s}
}

// UnknownOperatorError is returned by ParseOperator for text that is not
// exactly one operator.
type UnknownOperatorError struct {
	// Operator is the text given.
	Operator string
	// Rest is what is left after the longest operator prefix systemd
	// recognises (all of Operator when none matches); systemd-analyze names
	// this part in its error message.
	Rest string
}

func (e *UnknownOperatorError) Error() string {
	return "vercmp: unknown operator \"" + e.Rest + "\""
}

// Holds reports whether "a op b" is true under Compare. It is false for an
// invalid Operator.
func (op Operator) Holds(a, b string) bool {
	r := Compare(a, b)
	switch op {
	case OpLess:
		return r < 0
	case OpLessOrEqual:
		return r <= 0
	case OpEqual:
		return r == 0
	case OpNotEqual:
		return r != 0
	case OpGreaterOrEqual:
		return r >= 0
	case OpGreater:
		return r > 0
	}
	return false
}

// String returns the symbolic spelling of op, e.g. "<=".
func (op Operator) String() string {
	switch op {
	case OpLess:
		return "<"
	case OpLessOrEqual:
		return "<="
	case OpEqual:
		return "=="
	case OpNotEqual:
		return "!="
	case OpGreaterOrEqual:
		return ">="
	case OpGreater:
		return ">"
	}
	return "invalid"
}

// ResultSymbol returns the operator systemd prints for a Compare result:
// "<" when negative, ">" when positive and "==" when zero.
func ResultSymbol(result int) string {
	switch {
	case result < 0:
		return "<"
	case result > 0:
		return ">"
	}
	return "=="
}
