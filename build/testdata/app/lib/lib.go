package lib

// Greeting is what the app prints.
func Greeting() string { return "hello" }
