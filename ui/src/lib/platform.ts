// Which desktop the window runs on, from the web view's user agent (known before anything is drawn).

export type Platform = 'linux' | 'macos' | 'windows' | 'other';

/** WebKitGTK says "X11; Linux", WKWebView "Macintosh", WebView2 "Windows NT". */
export function platformOf(userAgent: string): Platform {
  if (/Windows NT/.test(userAgent)) return 'windows';
  if (/Macintosh|Mac OS X/.test(userAgent)) return 'macos';
  if (/Linux|X11|FreeBSD|OpenBSD/.test(userAgent) && !/Android/.test(userAgent)) return 'linux';
  return 'other';
}
