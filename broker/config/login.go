package config

import "time"

// Login bounds the CPU that CONNECT packets can make the broker spend on
// password checks. Every CONNECT with a username and password costs one
// bcrypt comparison (tens of milliseconds of CPU at cost 10, also for an
// unknown username), so a flood of CONNECTs with wrong passwords could
// otherwise keep every core busy and starve honest clients.
type Login struct {
	// MaxConcurrentChecks is the most password checks (bcrypt comparisons)
	// run at once; 0 means one per CPU the broker may use (GOMAXPROCS as
	// the process started, whatever procs does to it since).
	// A CONNECT that finds every check slot busy waits up to CheckWait.
	MaxConcurrentChecks int `yaml:"maxConcurrentChecks" json:"maxConcurrentChecks" reload:"hot"`
	// CheckWait bounds how long a CONNECT waits for a password check slot.
	// After it the client is refused: 5.0 with 0x89 Server busy, 3.1.1
	// with return code 3 (server unavailable).
	CheckWait Duration `yaml:"checkWait" json:"checkWait" reload:"hot"`
	// FailuresBeforeBackoff is the number of failed logins from one source
	// address tolerated before its back-off starts (a client that mistypes
	// a password once is not refused).
	FailuresBeforeBackoff int `yaml:"failuresBeforeBackoff" json:"failuresBeforeBackoff" reload:"hot"`
	// FailureBackoff is the back-off after failed logins from a source
	// address: once it failed more than FailuresBeforeBackoff times,
	// CONNECTs from that address are refused without a password check
	// (5.0: 0x9F Connection rate exceeded, 3.1.1: return code 3) for
	// FailureBackoff, doubling with each further failure up to
	// FailureBackoffMax. A successful login clears it; so does a quiet
	// FailureBackoffMax after the back-off ended. 0 disables the back-off.
	// Clients behind one NAT address share it.
	FailureBackoff Duration `yaml:"failureBackoff" json:"failureBackoff" reload:"hot"`
	// FailureBackoffMax caps the back-off of one source address.
	FailureBackoffMax Duration `yaml:"failureBackoffMax" json:"failureBackoffMax" reload:"hot"`
	// BackoffAddresses bounds the source addresses remembered for the
	// back-off; when full, the least recently failed address is forgotten,
	// so an attacker rotating addresses cannot grow the broker's memory.
	BackoffAddresses int `yaml:"backoffAddresses" json:"backoffAddresses" reload:"hot"`
}

// DefaultLogin is the Login section of Default.
func DefaultLogin() Login {
	return Login{
		CheckWait:             Duration(2 * time.Second),
		FailuresBeforeBackoff: 3,
		FailureBackoff:        Duration(time.Second),
		FailureBackoffMax:     Duration(time.Minute),
		BackoffAddresses:      10000,
	}
}

func (c *Config) validateLogin(v *validator) {
	l := c.Login
	v.check(l.MaxConcurrentChecks >= 0, "login.maxConcurrentChecks", "must be 0 (one per CPU) or positive, got %d", l.MaxConcurrentChecks)
	v.check(l.CheckWait > 0, "login.checkWait", "must be positive, got %s", l.CheckWait)
	v.check(l.FailuresBeforeBackoff >= 0, "login.failuresBeforeBackoff", "must be 0 or positive, got %d", l.FailuresBeforeBackoff)
	v.check(l.FailureBackoff >= 0, "login.failureBackoff", "must be 0 (no back-off) or positive, got %s", l.FailureBackoff)
	v.check(l.FailureBackoffMax >= l.FailureBackoff, "login.failureBackoffMax",
		"must be at least login.failureBackoff (%s), got %s", l.FailureBackoff, l.FailureBackoffMax)
	v.check(l.BackoffAddresses >= 1 && l.BackoffAddresses <= 1000000, "login.backoffAddresses",
		"must be between 1 and 1000000, got %d", l.BackoffAddresses)
}
