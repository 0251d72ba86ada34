// Package notify emails the run report (plain text and HTML) over SMTP with go-mail: STARTTLS or
// implicit TLS, with authentication. A failed notification never changes a deployment's result; the
// caller records it in the report.
package notify

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	"crypto/tls"

	"github.com/wneessen/go-mail"

	"go.opentelemetry.io/otel/attribute"

	"wanderlust.dev/pipeline/ci/stages/report"
	"wanderlust.dev/pipeline/ci/stages/telemetry"
)

// TLS modes.
const (
	StartTLS = "starttls" // upgrade a plain connection; refuse to send without TLS
	Implicit = "implicit" // TLS from the first byte (port 465)
	NoTLS    = "none"     // plain text: only for a relay on localhost
)

// Options say where and to whom.
type Options struct {
	Host string
	Port int // default 587 (starttls), 465 (implicit), 25 (none)
	// Username and Password authenticate (PLAIN, or LOGIN/CRAM where offered); the password is a secret.
	Username, Password string
	From               string
	To                 []string
	TLS                string // StartTLS (default), Implicit or NoTLS
	// RootCAs verifies the server's certificate (nil: the system's).
	RootCAs *x509.CertPool
	Timeout time.Duration // default 30s
}

// Subject is the mail's subject: the seed's wording, with the result.
func Subject(r *report.Run) string {
	env := ""
	if r.Env != "" {
		env = " to " + r.Env
	}
	switch r.Result {
	case report.Failed:
		return fmt.Sprintf("Wanderlust deployment%s failed - 'FAILURE'", env)
	case report.NotOurs:
		return fmt.Sprintf("Wanderlust deployment%s failed, not because of this change - 'FAILURE'", env)
	case report.Superseded:
		return fmt.Sprintf("Wanderlust deployment%s superseded by a newer commit - 'SUPERSEDED'", env)
	case report.Paused:
		return fmt.Sprintf("Wanderlust canary%s paused for promotion - 'PAUSED'", env)
	case report.MailTest:
		return "Wanderlust pipeline: test message - the SMTP settings work"
	case report.AlreadyDeployed:
		return fmt.Sprintf("Wanderlust Application already deployed%s - 'SUCCESS'", env)
	}
	return fmt.Sprintf("Wanderlust Application has been updated and deployed%s - 'SUCCESS'", env)
}

// Validate checks the settings without connecting.
func (o Options) Validate() error {
	switch strings.ToLower(o.TLS) {
	case "", StartTLS, Implicit, NoTLS:
	default:
		return fmt.Errorf("notify: SMTP TLS mode %q: want starttls, implicit or none", o.TLS)
	}
	switch {
	case o.Host == "":
		return fmt.Errorf("notify: an SMTP host is required")
	case o.Port < 0 || o.Port > 65535:
		return fmt.Errorf("notify: SMTP port %d is out of range", o.Port)
	case o.From == "":
		return fmt.Errorf("notify: a sender (--mail-from) is required")
	case len(o.To) == 0:
		return fmt.Errorf("notify: at least one recipient (--mail-to) is required")
	}
	for _, a := range append([]string{o.From}, o.To...) {
		if _, err := netmail.ParseAddress(a); err != nil {
			return fmt.Errorf("notify: %q is not an email address", a)
		}
	}
	return nil
}

// Send mails the report.
func Send(ctx context.Context, o Options, r *report.Run) (err error) {
	ctx, span := telemetry.Start(ctx, "notify.send", telemetry.Attr("notify.subject", Subject(r)), telemetry.Attr("notify.tls", cmp.Or(o.TLS, StartTLS)),
		attribute.Int("notify.recipients", len(o.To)))
	defer func() { telemetry.End(span, err) }()
	if o.Host == "" || o.From == "" || len(o.To) == 0 {
		return errors.New("notify: SMTP host, sender and at least one recipient are required")
	}
	m := mail.NewMsg()
	if err := m.From(o.From); err != nil {
		return fmt.Errorf("notify: sender: %w", err)
	}
	if err := m.To(o.To...); err != nil {
		return fmt.Errorf("notify: recipients: %w", err)
	}
	m.Subject(Subject(r))
	m.SetDate()
	m.SetMessageID()
	m.SetBodyString(mail.TypeTextPlain, r.Text())
	m.AddAlternativeString(mail.TypeTextHTML, r.HTML())

	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	opts := []mail.Option{mail.WithTimeout(timeout), mail.WithTLSConfig(&tls.Config{ServerName: o.Host, RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12})}
	port := o.Port
	switch strings.ToLower(o.TLS) {
	case "", StartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
		if port == 0 {
			port = 587
		}
	case Implicit:
		opts = append(opts, mail.WithSSL())
		if port == 0 {
			port = 465
		}
	case NoTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
		if port == 0 {
			port = 25
		}
	default:
		return fmt.Errorf("notify: TLS mode %q: want starttls, implicit or none", o.TLS)
	}
	opts = append(opts, mail.WithPort(port))
	if o.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover), mail.WithUsername(o.Username), mail.WithPassword(o.Password))
	}
	c, err := mail.NewClient(o.Host, opts...)
	if err != nil {
		return fmt.Errorf("notify: %w", scrub(err, o.Password))
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return fmt.Errorf("notify: send to %s:%d: %w", o.Host, port, scrub(err, o.Password))
	}
	return nil
}

func scrub(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "***"))
}
