// No console window behind the app on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Some(answer) = magpie_desktop::answer_flags(std::env::args().skip(1)) {
        #[allow(
            clippy::print_stdout,
            reason = "the answer to --version or --help is the program's output"
        )]
        {
            println!("{answer}");
        }
        return;
    }
    magpie_desktop::run();
}
