package api

import (
	"errors"
	"fmt"
)

// Code is a machine-readable error class. The set is closed: every error that
// crosses the wire carries exactly one of these.
type Code string

// The error codes. Each maps once to a CLI exit code and an HTTP status (see
// ExitCode and HTTPStatus).
const (
	CodeNotFound          Code = "NOT_FOUND"
	CodeConflict          Code = "CONFLICT"
	CodeNotLeader         Code = "NOT_LEADER"
	CodeNotInitialized    Code = "NOT_INITIALIZED"
	CodeUnauthorized      Code = "UNAUTHORIZED"
	CodeInvalidArgument   Code = "INVALID_ARGUMENT"
	CodeResourceExhausted Code = "RESOURCE_EXHAUSTED"
	CodeUnavailable       Code = "UNAVAILABLE"
	CodeUnimplemented     Code = "UNIMPLEMENTED"
	CodeInternal          Code = "INTERNAL"
)

// Error is an error with a code, as sent on the wire. Leader, when set on a
// NOT_LEADER error, is the NodeAddr text of the node believed to lead.
type Error struct {
	Code    Code   `cbor:"code" json:"code"`
	Message string `cbor:"message" json:"message"`
	Leader  string `cbor:"leader,omitempty" json:"leader,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, api.ErrNotFound) matches any NOT_FOUND error.
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code
	}
	return false
}

// Sentinels for errors.Is. They carry no message; compare, do not return them bare.
var (
	ErrNotFound          = &Error{Code: CodeNotFound}
	ErrConflict          = &Error{Code: CodeConflict}
	ErrNotLeader         = &Error{Code: CodeNotLeader}
	ErrNotInitialized    = &Error{Code: CodeNotInitialized}
	ErrUnauthorized      = &Error{Code: CodeUnauthorized}
	ErrInvalidArgument   = &Error{Code: CodeInvalidArgument}
	ErrResourceExhausted = &Error{Code: CodeResourceExhausted}
	ErrUnavailable       = &Error{Code: CodeUnavailable}
	ErrUnimplemented     = &Error{Code: CodeUnimplemented}
	ErrInternal          = &Error{Code: CodeInternal}
)

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err: the code of the first *Error in its chain,
// or CodeInternal for any other non-nil error.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// codeTable is the one mapping from codes to CLI exit codes and HTTP statuses.
var codeTable = map[Code]struct{ exit, http int }{
	CodeNotFound:          {1, 404},
	CodeConflict:          {1, 409},
	CodeNotLeader:         {3, 503},
	CodeNotInitialized:    {3, 503},
	CodeUnauthorized:      {3, 401},
	CodeInvalidArgument:   {2, 400},
	CodeResourceExhausted: {2, 429},
	CodeUnavailable:       {3, 503},
	CodeUnimplemented:     {3, 501},
	CodeInternal:          {3, 500},
}

// ExitCode is the aspen-cli exit code for err: 0 success, 1 a negative answer
// (not found, conflict), 2 a usage or argument error, 3 the cluster could not be
// reached or failed.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	if c, ok := codeTable[CodeOf(err)]; ok {
		return c.exit
	}
	return 3
}

// HTTPStatus is the HTTP status for err on the JSON gateway.
func HTTPStatus(err error) int {
	if err == nil {
		return 200
	}
	if c, ok := codeTable[CodeOf(err)]; ok {
		return c.http
	}
	return 500
}
