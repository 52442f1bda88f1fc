// examples/cpp/upload.cpp: an upload job (or, with --reply, an upload-reply job) with openbits.hpp.
//
//   upload [--reply] FILE URL
//
// Sends FILE (an absolute path) to URL, a BITS upload server (IIS's BITS extension or
// openbits-server), and completes the job. With --reply the server's application answers: the
// program prints the reply's size and the file complete() put it in. The manager keeps its state
// in FILE's folder, in .openbits-state.
#include <openbits.hpp>

#include <chrono>
#include <iostream>
#include <string>

int main(int argc, char **argv) try {
    const bool reply = argc == 4 && std::string(argv[1]) == "--reply";
    if (argc != (reply ? 4 : 3)) {
        std::cerr << "usage: " << argv[0] << " [--reply] FILE URL\n";
        return 2;
    }
    const std::string file = argv[reply ? 2 : 1], url = argv[reply ? 3 : 2];
    const std::string folder = file.substr(0, file.find_last_of('/'));
    openbits::Manager manager(folder + "/.openbits-state");
    openbits::Job job = manager.create_job("openbits upload example",
                                           reply ? openbits::JobType::UploadReply : openbits::JobType::Upload);
    job.add_file(url, file); // an upload job has exactly one file
    job.resume();            // Create-Session, Fragments, [the reply], Close-Session
    if (job.wait_for(std::chrono::minutes(10)) != openbits::JobState::Transferred) {
        const auto error = job.error();
        std::cerr << "failed: " << (error ? error->description : "timed out") << "\n";
        job.cancel();
        return 1;
    }
    std::cout << "uploaded " << job.progress().bytes_transferred << " bytes\n";
    if (reply) std::cout << "reply: " << job.reply_data().size() << " bytes\n"; // up to 1 MiB
    job.complete();
    if (reply) std::cout << "reply file: " << job.reply_file_name().value_or("") << "\n";
    return 0;
} catch (const openbits::Error &e) {
    std::cerr << e.what() << "\n";
    return 1;
}
