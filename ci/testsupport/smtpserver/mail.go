package smtpserver

import (
	"errors"
	"io"
	"log"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one accepted mail.
type Message struct {
	From string
	To   []string
	Data []byte
	Auth string // the user that authenticated
}

// Mail is a mail catcher: an SMTP server (go-smtp) that accepts mail from one user (AUTH PLAIN;
// anyone when User is empty) and keeps every message.
type Mail struct {
	User, Password string

	mu   sync.Mutex
	msgs []Message
}

// SMTPServer returns the SMTP server of the catcher; the caller sets its TLS configuration and serves it.
func (m *Mail) SMTPServer(domain string) *smtp.Server {
	srv := smtp.NewServer(mailBackend{m})
	srv.Domain = domain
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	return srv
}

// Messages returns the accepted mails.
func (m *Mail) Messages() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.msgs...)
}

type mailBackend struct{ m *Mail }

func (b mailBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailSession{m: b.m}, nil }

type mailSession struct {
	m    *Mail
	user string
	msg  Message
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, errors.New("unsupported mechanism")
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.m.User || pass != s.m.Password {
			return errors.New("invalid credentials")
		}
		s.user = user
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.m.User != "" && s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	s.msg = Message{From: from, Auth: s.user}
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.To = append(s.msg.To, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.Data = b
	s.m.mu.Lock()
	s.m.msgs = append(s.m.msgs, s.msg)
	s.m.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.msg = Message{} }
func (s *mailSession) Logout() error { return nil }
