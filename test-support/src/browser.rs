//! Headless Chromium over WebDriver (chromedriver) for browser tests.
