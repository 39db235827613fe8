// GOV.UK Frontend's page template marks the body before any component starts (as its own
// inline script does; drp's Content-Security-Policy allows scripts from drp only).
document.body.className += ' js-enabled' + ('noModule' in HTMLScriptElement.prototype ? ' govuk-frontend-supported' : '');
