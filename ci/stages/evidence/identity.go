package evidence

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
)

// Identity is who must have signed keyless: the certificate's subject (SAN) and its OIDC issuer,
// each exact or a regular expression, as cosign's --certificate-identity[-regexp] and
// --certificate-oidc-issuer[-regexp]. Checking certificates is the GitOps program's (sigstore-go);
// the rules are checked here, where the module can too, before anything runs.
type Identity struct {
	Subject, SubjectRegexp, Issuer, IssuerRegexp string
}

// Validate requires one subject and one issuer rule and compiles the expressions.
func (i Identity) Validate() error {
	if (i.Subject == "") == (i.SubjectRegexp == "") {
		return errors.New("evidence: give exactly one of --verify-identity and --verify-identity-regexp (e.g. https://github.com/OWNER/REPO/.github/workflows/deploy.yml@refs/heads/main)")
	}
	if (i.Issuer == "") == (i.IssuerRegexp == "") {
		return errors.New("evidence: give exactly one of --verify-issuer and --verify-issuer-regexp (GitHub Actions: https://token.actions.githubusercontent.com)")
	}
	for _, r := range []struct{ flag, v string }{{"--verify-identity-regexp", i.SubjectRegexp}, {"--verify-issuer-regexp", i.IssuerRegexp}} {
		if _, err := regexp.Compile(r.v); err != nil {
			return fmt.Errorf("evidence: %s: %w", r.flag, err)
		}
	}
	return nil
}

// Required is "<subject> issued by <issuer>", regular expressions between slashes.
func (i Identity) Required() string {
	pick := func(exact, re string) string {
		if re != "" {
			return "/" + re + "/"
		}
		return exact
	}
	return pick(i.Subject, i.SubjectRegexp) + " issued by " + pick(i.Issuer, i.IssuerRegexp)
}

// CheckTokenSource checks that keyless signing can have an identity token (nothing is asked for):
// given (--oidc-token), or requested from GitHub Actions with --oidc-request-url and
// --oidc-request-token together. The arguments say which are set; module and program check alike.
func CheckTokenSource(token, requestURL, requestToken bool) error {
	switch {
	case token, requestURL && requestToken:
		return nil
	case requestURL || requestToken:
		return errors.New("evidence: --oidc-request-url and --oidc-request-token go together (GitHub Actions: env:ACTIONS_ID_TOKEN_REQUEST_URL and env:ACTIONS_ID_TOKEN_REQUEST_TOKEN)")
	}
	return errors.New("evidence: --keyless needs an identity token: --oidc-token, or on GitHub Actions --oidc-request-url and --oidc-request-token (the job needs `permissions: id-token: write`)")
}

// CheckServices checks keyless signing's Fulcio, Rekor and timestamp authority URLs (empty: the
// default) as CheckServiceURL does, naming the flag of a bad one.
func CheckServices(fulcio, rekor, tsa string) error {
	for _, u := range []struct{ flag, v string }{{"--fulcio-url", fulcio}, {"--rekor-url", rekor}, {"--tsa-url", tsa}} {
		if err := CheckServiceURL(u.flag, u.v); err != nil {
			return err
		}
	}
	return nil
}

// CheckServiceURL checks the URL of a Sigstore service (flag names it): http(s), a host, no
// credentials (which are not shown). Empty is the default.
func CheckServiceURL(flag, v string) error {
	if v == "" {
		return nil
	}
	p, err := url.Parse(v)
	switch {
	case err != nil:
		return fmt.Errorf("evidence: %s: not a URL", flag)
	case p.User != nil:
		return fmt.Errorf("evidence: %s carries credentials (not shown): want a plain URL", flag)
	case (p.Scheme != "https" && p.Scheme != "http") || p.Host == "":
		return fmt.Errorf("evidence: %s %q: want an http(s) URL", flag, v)
	}
	return nil
}
