package sandbox

import (
	"encoding/json"
	"errors"
	"io"
	"log"
	"mime"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
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
// anyone when User is empty) and keeps every message, and an HTTP listing of them.
type Mail struct {
	User, Password string

	mu   sync.Mutex
	msgs []Message
}

// SMTPServer returns the SMTP server of the catcher; the caller sets its TLS configuration (without
// one, AUTH is allowed in plain text: the sandbox's network is the engine's) and serves it.
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

// Handler lists the messages as JSON at / (from, to, subject, date, size) and serves message n's
// raw text at /messages/<n>.
func (m *Mail) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		type entry struct {
			N       int      `json:"n"`
			From    string   `json:"from"`
			To      []string `json:"to"`
			Subject string   `json:"subject"`
			Date    string   `json:"date"`
			Size    int      `json:"size"`
		}
		out := []entry{}
		for i, msg := range m.Messages() {
			e := entry{N: i, From: msg.From, To: msg.To, Size: len(msg.Data)}
			if parsed, err := mail.ReadMessage(strings.NewReader(string(msg.Data))); err == nil {
				e.Subject, _ = new(mime.WordDecoder).DecodeHeader(parsed.Header.Get("Subject"))
				e.Date = parsed.Header.Get("Date")
			}
			out = append(out, e)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /messages/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		msgs := m.Messages()
		if err != nil || n < 0 || n >= len(msgs) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "message/rfc822")
		_, _ = w.Write(msgs[n].Data)
	})
	return mux
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
